"""Pure-logic tests: in-process, no subprocess, no Horovod job (`make test-unit`)."""

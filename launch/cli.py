"""`ppg-cvae`: one console script: prep, train, generate, evaluate, demo, launch, tensorboard, doctor."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from cvae import load_tensorflow_quietly
from data_prep.common import UserError

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo.yaml"
OVERRIDES_HELP = "config overrides key.sub=value after the flags, e.g. train.epochs=5 model.latent_dim=8"


class RankFilter(logging.Filter):
    """Prefix log records with the launcher's rank (Horovod, Open MPI, PMI or Slurm variables)."""

    def filter(self, record):
        for var in ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"):
            if var in os.environ:
                record.rank = os.environ[var]
                break
        else:
            record.rank = "0"
        return True


def _setup_logging() -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RankFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s [rank %(rank)s] %(levelname)s %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("absl").setLevel(logging.WARNING)   # TensorFlow's own INFO records (checkpoint sharding...)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _config_arg(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--config", required=required, metavar="C",
                   help="YAML config (see configs/; every key and its range: each layer's settings.py)")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help=OVERRIDES_HELP)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad flag on one line (exit 2) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}; see '{self.prog} --help'\n")


def _add_prep(sub) -> None:
    p = sub.add_parser("prep", help="signals -> validated, subject-disjoint TFRecord shards + manifest.json",
                       description="Read signals (or simulate the built-in cohort), validate, normalize, split by "
                                   "subject and write sharded TFRecords with DIR/manifest.json.")
    _config_arg(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output directory for shards and manifest.json")
    p.add_argument("--source", action="append", default=[], metavar="PATH",
                   help="an input file or directory (repeat the flag for several); none = the built-in cohort "
                        "simulator")
    p.add_argument("--fs", type=float, metavar="HZ",
                   help="sampling rate of raw recordings that carry none (no header rate, time column or fs column "
                        "in the label table)")
    p.add_argument("--labels", metavar="FILE",
                   help="label table of raw recordings (record, labels, optional fs, subject_id, source); default: "
                        "labels.csv beside them")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a different dataset already in --out (only prep's own files are removed)")
    p.add_argument("--as-reference-pickles", action="store_true",
                   help="instead of shards, write the source (e.g. the simulated cohort) as the reference study's "
                        "train_db_1p/validation_db_1p/test_db_1p.pickle trio in --out")
    p.add_argument("--verify", action="store_true",
                   help="only re-check the sha256 and record count of every shard in --out against its manifest")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train the CVAE (run under horovodrun/mpirun/srun, or alone as one rank)",
                       description="Data-parallel Horovod training. Rank 0 validates, decides early stopping, "
                                   "writes TensorBoard logs and checkpoints; RUN/model holds the exported model.")
    _config_arg(p)
    p.add_argument("--data", required=True, metavar="DIR", help="prepared dataset directory (holds manifest.json)")
    p.add_argument("--run-dir", required=True, metavar="RUN",
                   help="run directory: config, checkpoints, best model, TensorBoard logs")
    p.add_argument("--resume", action="store_true",
                   help="continue from RUN's last checkpoint (weights, optimizer, epoch, LR, early-stopping state)")
    p.add_argument("--elastic", action="store_true",
                   help="Horovod elastic training (start it with `ppg-cvae launch --elastic`): workers may leave and "
                        "join; the run rolls back to the last commit (train.elastic_commit_steps) and goes on")


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="synthetic signals for requested ages -> .npz + PNG",
                       description="Generate N signals per requested age with a trained model; its other "
                                   "conditions are fixed with --label or drawn from training subjects near each age.")
    p.add_argument("--model", required=True, metavar="RUN", help="training run directory (holds model/)")
    p.add_argument("--ages", required=True, metavar="SPEC", help="18:98 (inclusive), 18:98:5 (step) or 20,40,60")
    p.add_argument("--n-per-age", type=int, required=True, metavar="K", help="signals per requested age")
    p.add_argument("--out", required=True, metavar="FILE.npz", help="output .npz; the PNG is written beside it")
    p.add_argument("--seed", type=int, default=None, metavar="S", help="random seed (default: generate.seed)")
    p.add_argument("--label", action="append", default=[], metavar="k=v",
                   help="fix a condition of the model for every signal, e.g. --label sex=F when the model was trained "
                        "with sex in model.conditions (repeatable); labels that are not conditions are drawn from "
                        "training subjects near each age and recorded as such")
    p.add_argument("--format", action="append", default=[], choices=["csv", "pickle"],
                   help="also write labels as CSV, or the reference study's {labels, samples} pickle (repeatable)")
    p.add_argument("--allow-extrapolation", action="store_true",
                   help="allow ages/labels outside the training range")
    p.add_argument("--config", metavar="C", help="YAML config for the generate section (optional)")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help=OVERRIDES_HELP)


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="fidelity report: synthetic vs held-out real signals",
                       description="Compare synthetic signals to the held-out test split: age conditioning "
                                   "fidelity, real-vs-synthetic discriminability, train-on-synthetic/test-on-real. "
                                   "Takes no config: its one setting is --seed.")
    p.add_argument("--synthetic", required=True, metavar="FILE.npz", help="output of ppg-cvae generate")
    p.add_argument("--data", required=True, metavar="DIR", help="prepared dataset directory (real signals)")
    p.add_argument("--out", required=True, metavar="REPORT_DIR", help="writes report.md, metrics.json, figures")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed for the evaluation models")
    p.add_argument("--model", metavar="RUN", help="the run that made --synthetic: also draw and judge a synthetic set "
                                                  "at exactly the real test signals' labels (one per signal)")


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="the whole pipeline at demo scale on CPU with 2 Horovod ranks",
                       description="prep (simulator) -> train (horovodrun -np 2, Gloo) -> generate -> evaluate.")
    p.add_argument("--out", default="outputs/demo", metavar="DIR", help="output directory (default outputs/demo)")
    p.add_argument("--np", type=int, default=2, dest="np_", metavar="N", help="training ranks (default 2)")
    p.add_argument("--config", default=str(DEMO_CONFIG), metavar="C", help="YAML config (default configs/demo.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help=OVERRIDES_HELP)


def _add_launch(sub) -> None:
    p = sub.add_parser("launch", help="build and run the horovodrun command for N ranks (local, hosts, or Slurm)",
                       description="Run a ppg-cvae subcommand (normally train) on N Horovod ranks. Inside a Slurm "
                                   "allocation the hosts and slots come from the Slurm environment.")
    p.add_argument("--np", type=int, dest="np_", metavar="N",
                   help="number of ranks (default: all slots of --hosts / the Slurm allocation, else 1)")
    p.add_argument("--hosts", metavar="H1:S,H2:S", help="hosts and slots, e.g. node1:4,node2:4 (default: localhost)")
    p.add_argument("--controller", choices=["gloo", "mpi"], default="gloo", help="Horovod controller (default gloo)")
    p.add_argument("--elastic", action="store_true",
                   help="elastic training over Gloo between --min-np and --max-np workers; hosts are re-read from "
                        "--hosts-file (or the Slurm job) while it runs, and `train` gets --elastic")
    p.add_argument("--min-np", type=int, metavar="A", help="--elastic: fewest workers to go on with (default 1)")
    p.add_argument("--max-np", type=int, metavar="B", help="--elastic: most workers (default --np)")
    p.add_argument("--hosts-file", metavar="FILE",
                   help="--elastic: lines of host:slots, re-read while training runs (default: the Slurm job's nodes)")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.add_argument("command_args", nargs=argparse.REMAINDER, metavar="-- train ...",
                   help="the ppg-cvae subcommand and its arguments, after --")


def _add_tensorboard(sub) -> None:
    p = sub.add_parser("tensorboard", help="serve TensorBoard for a run or a folder of runs on 127.0.0.1",
                       description="Start TensorBoard on RUN_DIR/tensorboard (or on every RUN/tensorboard inside a "
                                   "folder of runs, each under its run's name), bound to 127.0.0.1 unless --host.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="training run directory, or a folder of them")
    p.add_argument("--port", type=int, default=6006, help="port (default 6006)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: reach it via ssh -L)")


def _add_doctor(sub) -> None:
    sub.add_parser("doctor", help="versions, Horovod build (frameworks, controllers), GPUs, what is missing",
                   description="Report the environment and exit non-zero when an essential piece is missing.")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="ppg-cvae", description=(
        "Train a conditional convolutional VAE on PPG pulse waveforms with Horovod and generate "
        "synthetic PPG for requested ages. Pipeline: prep -> train -> generate -> evaluate."))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser)

    _add_prep(sub)
    _add_train(sub)
    _add_generate(sub)
    _add_evaluate(sub)
    _add_demo(sub)
    _add_launch(sub)
    _add_tensorboard(sub)
    _add_doctor(sub)
    return parser


def cmd_prep(args) -> int:
    from cvae.config import load_config
    from data_prep.common import lock_directory
    from data_prep.manifest import verify
    if args.verify:
        result = verify(args.out)
        logging.info("verified %s: %d shards, %d records, all checksums match", args.out,
                     result["shards"], result["records"])
        return 0
    from data_prep.prep import prepare
    from data_prep.sources import open_source
    cfg = load_config(args.config, args.overrides)
    if args.fs is not None and not 0 < args.fs <= 100_000:
        raise UserError(f"--fs {args.fs}: the sampling rate must be a number of Hz in (0, 100000]")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with lock_directory(out, ".prep.lock", "ppg-cvae prep (--out)"):
        source = open_source(args.source, cfg, args.fs, out, Path(args.labels) if args.labels else None)
        if args.as_reference_pickles:
            from data_prep.reference_pickles import write_reference_trio
            write_reference_trio(source, cfg, out)
        else:
            prepare(cfg, out, source, overwrite=args.overwrite)
    return 0


def cmd_train(args) -> int:
    from cvae.config import load_config
    from data_prep.manifest import check_shards, load_manifest
    cfg = load_config(args.config, args.overrides)
    check_shards(args.data, load_manifest(args.data))   # a bad dataset is refused before TensorFlow loads
    load_tensorflow_quietly()
    if args.elastic:
        from cvae.training.elastic import train_elastic
        return train_elastic(cfg, args.data, args.run_dir, resume=args.resume)
    from cvae.training.trainer import train
    return train(cfg, args.data, args.run_dir, resume=args.resume)


def cmd_generate(args) -> int:
    from cvae.config import load_config
    cfg = load_config(args.config, args.overrides)
    from cvae.generation.generate import check_request, generate, parse_ages, parse_labels
    from cvae.generation.sampler import read_meta
    from data_prep.settings import LABELS
    ages, fixed = parse_ages(args.ages), parse_labels(args.label, list(LABELS))
    # a refused request is refused before TensorFlow loads (generate checks it again, for callers from Python)
    check_request(read_meta(args.model), ages, args.n_per_age, Path(args.out), fixed, args.allow_extrapolation)
    load_tensorflow_quietly()
    generate(args.model, ages, args.n_per_age, args.out,
             seed=cfg.generate.seed if args.seed is None else args.seed, fixed=fixed,
             allow_extrapolation=args.allow_extrapolation, formats=tuple(args.format),
             batch_size=cfg.generate.batch_size, add_noise=cfg.generate.add_noise,
             fitted_latent=cfg.generate.latent == "fitted")
    return 0


def cmd_evaluate(args) -> int:
    from cvae.evaluate.report import read_inputs, write_report
    inputs = read_inputs(args.synthetic, args.data, seed=args.seed, model=args.model)   # refused before TensorFlow
    load_tensorflow_quietly()
    write_report(inputs, args.out)
    return 0


def cmd_demo(args) -> int:
    from cvae.config import load_config, save_config
    from launch import horovod
    cfg = load_config(args.config, args.overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = out / "config.yaml"
    save_config(cfg, config)
    data, run, synthetic, report = out / "data", out / "run", out / "generated.npz", out / "report"
    steps = [
        ["prep", "--config", str(config), "--out", str(data)],
        None,
        ["generate", "--model", str(run), "--ages", "20:90:10", "--n-per-age", "60", "--out", str(synthetic),
         "--config", str(config)],
        ["evaluate", "--synthetic", str(synthetic), "--data", str(data), "--out", str(report), "--model", str(run)],
    ]
    for i, step in enumerate(steps):
        if step is None:
            cmd = horovod.horovodrun_command(args.np_, ["train", "--config", str(config), "--data", str(data),
                                                        "--run-dir", str(run), "--resume"])
            logging.info("demo: %s", " ".join(cmd))
            if horovod.run(cmd) != 0:
                raise UserError("demo: training failed (see the rank output above)")
            continue
        logging.info("demo: ppg-cvae %s", " ".join(step))
        rc = main(step)
        if rc:
            return rc
    print(f"\ndemo outputs:\n  data:        {data / 'manifest.json'}\n  run:         {run} "
          f"(TensorBoard logs in {run / 'tensorboard'})\n  synthetic:   {synthetic}\n  figure:      "
          f"{synthetic.with_suffix('.png')}\n  report:      {report / 'report.md'}\n"
          f"open TensorBoard: ppg-cvae tensorboard {run}   (serves 127.0.0.1:6006)")
    return 0


def cmd_doctor(args) -> int:
    load_tensorflow_quietly()
    from launch.doctor import report
    lines, missing = report()
    print("\n".join(lines))
    for item in missing:
        print(f"MISSING: {item}")
    print("doctor: " + ("all essentials present" if not missing else f"{len(missing)} essential(s) missing"))
    return 1 if missing else 0


def cmd_launch(args) -> int:
    from launch import horovod
    command = args.command_args[1:] if args.command_args[:1] == ["--"] else args.command_args
    if not command:
        raise UserError("launch: give the subcommand after --, e.g. ppg-cvae launch --np 2 -- train --config C ...")
    if args.elastic:
        return launch_elastic(args, command)
    hosts = args.hosts or horovod.slurm_hosts(dict(os.environ))
    slots = horovod.parse_hosts(hosts) if hosts else None
    np_ = args.np_ or slots or 1
    if np_ < 1 or (slots is not None and np_ > slots):
        raise UserError(f"--np {np_}: must be between 1 and the {slots} slots of {hosts}")
    cmd = horovod.horovodrun_command(np_, command, hosts=hosts, controller=args.controller)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    return horovod.run(cmd)


def launch_elastic(args, command: list[str]) -> int:
    """horovodrun with --min-np/--max-np and the host-discovery script; train runs with --elastic."""
    from launch import horovod
    if args.hosts or args.controller != "gloo":
        raise UserError("launch --elastic: hosts come from --hosts-file or the Slurm job, and the controller is gloo; "
                        "drop --hosts/--controller")
    if args.hosts_file:
        path = Path(args.hosts_file)
        if not path.is_file():
            raise UserError(f"--hosts-file {path}: no such file; write one host:slots line per host")
        lines = [(i, line.split("#")[0].strip()) for i, line in enumerate(path.read_text().splitlines(), 1)]
        for i, line in lines:
            if line and horovod.host_slots(line) is None:
                raise UserError(f"--hosts-file {path}, line {i}: {line[:60]!r}; use host:slots, e.g. node1:4")
        if not any(line for _, line in lines):
            raise UserError(f"--hosts-file {path}: no host in it; write one host:slots line per host")
        os.environ["PPG_CVAE_HOSTS_FILE"] = str(path.resolve())
    elif not os.environ.get("SLURM_JOB_ID"):
        raise UserError("launch --elastic: pass --hosts-file FILE (lines of host:slots) or run inside a Slurm job")
    max_np = args.max_np or args.np_
    min_np = args.min_np or 1
    if not max_np:
        raise UserError("launch --elastic: give --max-np (the most workers) or --np")
    np_ = args.np_ or max_np
    if not 1 <= min_np <= np_ <= max_np:
        raise UserError(f"launch --elastic: need 1 <= --min-np ({min_np}) <= --np ({np_}) <= --max-np ({max_np})")
    if command[:1] == ["train"] and "--elastic" not in command:
        command = [*command, "--elastic"]
    cmd = horovod.elastic_command(np_, min_np, max_np, command)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    return horovod.run(cmd)


def tensorboard_runs(path: Path) -> list[tuple[str, Path]]:
    """(name, log directory) of the run at `path`, or of every run directly inside it."""
    if (path / "tensorboard").is_dir():
        return [(path.resolve().name, path / "tensorboard")]
    runs = sorted((d.name, d / "tensorboard") for d in path.iterdir() if (d / "tensorboard").is_dir()) \
        if path.is_dir() else []
    if not runs:
        raise UserError(f"{path}: no tensorboard/ inside it or in its subdirectories; pass a run directory written "
                        "by ppg-cvae train, or a folder of them")
    return runs


def cmd_tensorboard(args) -> int:
    import getpass
    import shutil
    import socket
    import tempfile
    runs = tensorboard_runs(Path(args.run_dir))
    # TensorBoard names a run by its folder below --logdir: a folder of links named like the runs gives each run
    # its own name (TensorBoard follows the links). It lives in the system temp directory, a few bytes.
    links = Path(tempfile.mkdtemp(prefix="ppg-cvae-tensorboard-"))
    for name, logdir in runs:
        (links / name).symlink_to(logdir.resolve(), target_is_directory=True)
    print(f"TensorBoard for {', '.join(name for name, _ in runs)} at http://{args.host}:{args.port}/\n"
          f"from your laptop: ssh -N -L {args.port}:127.0.0.1:{args.port} {getpass.getuser()}@{socket.getfqdn()} "
          f"then open http://localhost:{args.port}/", flush=True)
    exe = Path(sys.executable).parent / "tensorboard"
    exe = str(exe) if exe.exists() else shutil.which("tensorboard")
    if exe is None:
        raise UserError("tensorboard is not installed in this environment; run 'make setup'")
    os.execv(exe, [exe, "--logdir", str(links), "--host", args.host, "--port", str(args.port)])


COMMANDS = {"prep": cmd_prep, "train": cmd_train, "generate": cmd_generate, "evaluate": cmd_evaluate,
            "demo": cmd_demo, "launch": cmd_launch, "tensorboard": cmd_tensorboard, "doctor": cmd_doctor}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging()
    for item in getattr(args, "overrides", []):
        if "=" not in item:
            print(f"ppg-cvae {args.command}: error: unexpected argument {item!r}; overrides look like key.sub=value",
                  file=sys.stderr)
            return 2
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        print(f"ppg-cvae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ppg-cvae {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

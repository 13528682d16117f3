"""Elastic training's bookkeeping: a reset resumes the epoch at the share already trained."""




def test_a_reset_resumes_the_epoch_at_the_share_already_trained():
    """The last commit, made at another world size, gives the steps done in this one: 9 of 11 steps on 1 rank are 4
    of 5 on 2 ranks (a partly trained batch again), never the whole epoch (one step is left to finish it with)."""
    from cvae.training.elastic import steps_done
    assert steps_done(9 / 11, 5) == 4 and steps_done(4 / 5, 11) == 8 and steps_done(2 / 5, 5) == 2
    assert steps_done(0.0, 5) == 0 and steps_done(1.0, 5) == 4

"""The training input pipeline's cache refuses what would not fit in memory."""

from cvae.training.input_pipeline import cache_fits


def test_the_cache_is_refused_when_it_would_not_fit():
    fits, need = cache_fits(1000, 1024, 1, 1)
    assert fits and need == 1000 * 1025 * 4
    assert not cache_fits(10 ** 9, 1024, 1, 1)[0]        # 4 TB

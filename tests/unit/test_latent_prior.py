"""The fitted latent prior samples z | condition with the answers Gaussian conditioning gives, records how many
subjects stand behind each component, and with a floor none stands on fewer."""
import numpy as np

from cvae.generation.latent_prior import LatentPrior, fit_latent_prior

FLOOR = 10


def test_linear_gaussian_conditioning_is_exact():
    rng = np.random.default_rng(0)
    c = rng.standard_normal((20000, 1))
    z = np.hstack([2.0 * c + 0.1 * rng.standard_normal(c.shape), rng.standard_normal(c.shape)])
    prior = LatentPrior(fit_latent_prior(z, c, np.arange(len(c)) % 500, components=1, seed=0))
    draws = prior.sample(np.full((5000, 1), 0.5), np.random.default_rng(1))
    assert abs(draws[:, 0].mean() - 1.0) < 0.01 and abs(draws[:, 0].std() - 0.1) < 0.01
    assert abs(draws[:, 1].mean()) < 0.05 and abs(draws[:, 1].std() - 1.0) < 0.05


def test_condition_picks_the_mixture_component_and_seed_fixes_the_draws():
    rng = np.random.default_rng(0)
    c = np.concatenate([rng.normal(-1, 0.1, 3000), rng.normal(1, 0.1, 3000)])[:, None]
    z = np.where(c < 0, 3.0, -3.0) + 0.2 * rng.standard_normal((6000, 2))
    prior = LatentPrior(fit_latent_prior(z, c, np.arange(len(c)) % 500, components=2, seed=0))
    young, old = (prior.sample(np.full((1000, 1), v), np.random.default_rng(2)) for v in (-1.0, 1.0))
    assert np.allclose(young.mean(axis=0), 3.0, atol=0.05) and np.allclose(old.mean(axis=0), -3.0, atol=0.05)
    assert np.array_equal(young, prior.sample(np.full((1000, 1), -1.0), np.random.default_rng(2)))
    # a condition between the modes draws from both, in proportion to their responsibility (equal here)
    middle = prior.sample(np.zeros((4000, 1)), np.random.default_rng(3))
    assert 0.4 < np.mean(middle[:, 0] > 0) < 0.6


def test_each_component_states_its_subjects_and_a_floor_holds():
    """40 subjects of 30 windows each, every subject's windows a tight cluster of its own: a 40-component fit gives
    components of one or two people, and says so. With a floor of 10 the mixture has at most 40 / 10 components,
    each the fit of 10 subjects or more, and more than one."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (40, 3))
    subjects = np.repeat(np.arange(40), 30)
    joint = centres[subjects] + 0.05 * rng.standard_normal((1200, 3))
    z, c = joint[:, :2], joint[:, 2:]
    free = fit_latent_prior(z, c, subjects.astype(str), components=40, seed=0)
    assert len(free["weights"]) == 40 and free["subjects"].min() <= 2
    params = fit_latent_prior(z, c, subjects.astype(str), components=40, seed=0, min_subjects=FLOOR)
    owner_counts = params["subjects"]
    assert 2 <= len(params["weights"]) == len(owner_counts) <= 40 // FLOOR
    assert owner_counts.min() >= FLOOR
    assert int(params["all_subjects"]) == 40 and LatentPrior(params).subjects.tolist() == owner_counts.tolist()


def test_fewer_subjects_than_the_floor_export_no_mixture():
    rng = np.random.default_rng(0)
    z, c = rng.standard_normal((900, 2)), rng.standard_normal((900, 1))
    assert fit_latent_prior(z, c, np.arange(900) % (FLOOR - 1), components=5, seed=0, min_subjects=FLOOR) is None

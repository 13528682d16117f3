"""ppg-cvae: distributed conditional VAE for synthetic PPG waveforms."""
from setuptools import find_packages, setup

TF_VERSION = "2.15.1"

setup(
    name="ppg-cvae",
    version="0.1.0",
    description="Horovod-distributed conditional convolutional VAE that generates synthetic PPG by age",
    python_requires="==3.11.*",
    packages=find_packages(include=["data_prep", "data_prep.*", "cvae", "cvae.*", "launch", "launch.*"]),
    package_data={"launch": ["setup_env.sh", "discover_hosts.sh"]},
    # TensorFlow comes with the `cpu` or the `gpu` extra (launch/setup_env.sh picks one); never both.
    install_requires=[
        "tensorboard==2.15.2",
        "numpy==1.26.4",  # TensorFlow 2.15 is built against numpy 1.x
        "pandas==2.2.3",
        "pyyaml==6.0.2",
        "scipy==1.13.1",
        "scikit-learn==1.5.2",
        "matplotlib==3.9.2",
        "tqdm==4.67.1",
        "wfdb==4.1.2",
        "h5py==3.16.0",  # PulseDB subset files (MATLAB v7.3)
        "vitaldb==1.7.2",  # VitalDB .vital case files
        "neurokit2==0.2.12",  # PPG beat detection; 0.2.13 requires numpy 2
        "PyWavelets==1.6.0",  # neurokit2 dependency, numpy 1.x build
        "pyarrow==17.0.0",  # Parquet label tables
        "google-crc32c==1.6.0",  # TFRecord checksums, written without TensorFlow
        "setuptools==69.5.1",  # tensorboard 2.15 imports pkg_resources (removed from recent setuptools)
    ],
    extras_require={
        "cpu": [f"tensorflow-cpu=={TF_VERSION}"],
        "gpu": [f"tensorflow[and-cuda]=={TF_VERSION}"],  # CUDA 12 libraries, NCCL among them
        "test": ["pytest==8.3.3", "pytest-timeout==2.3.1"],
    },
    entry_points={"console_scripts": ["ppg-cvae=launch.cli:main"]},
)

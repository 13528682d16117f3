"""ppg-cvae: distributed conditional VAE for synthetic PPG waveforms."""
from setuptools import find_packages, setup

TF_VERSION = "2.21.0"

setup(
    name="ppg-cvae",
    version="0.2.0",
    description="Horovod-distributed conditional convolutional VAE that generates synthetic PPG by age",
    python_requires=">=3.11,<3.14",
    packages=find_packages(include=["data_prep", "data_prep.*", "cvae", "cvae.*", "launch", "launch.*"]),
    package_data={"launch": ["setup_env.sh", "discover_hosts.sh", "horovod-0.28.1.patch"]},
    install_requires=[
        # tf-keras (Keras 2) requires the `tensorflow` distribution, never `tensorflow-cpu`: one TensorFlow
        # for CPU and GPU hosts; the `gpu` extra adds its CUDA 12 libraries.
        f"tensorflow=={TF_VERSION}",
        f"tf-keras=={TF_VERSION}",
        f"tensorboard=={TF_VERSION}",
        "numpy==2.4.6",
        "pandas==3.1.1",
        "pyyaml==6.0.4",
        "scipy==1.17.1",
        "scikit-learn==1.9.1",
        "matplotlib==3.11.2",
        "tqdm==4.70.1",
        "wfdb==4.3.1",
        "h5py==3.14.0",  # PulseDB subset files (MATLAB v7.3); TensorFlow 2.21 requires h5py < 3.15
        "vitaldb==1.7.2",  # VitalDB .vital case files
        "neurokit2==0.3.0",  # PPG beat detection and quality
        "pyarrow==26.0.1",  # Parquet label tables
        "google-crc32c==1.9.0",  # TFRecord checksums, written without TensorFlow
        "dp-accounting==0.6.0",  # the privacy spent by DP-SGD (train.privacy)
        "setuptools==81.0.0",  # neurokit2 0.3 requires setuptools < 82
    ],
    extras_require={
        "cpu": [],
        "gpu": [f"tensorflow[and-cuda]=={TF_VERSION}"],  # CUDA 12 libraries, NCCL among them
        "test": ["pytest==9.2.0", "pytest-timeout==2.4.0", "pytest-xdist==3.8.0", "hypothesis==6.170.17"],
    },
    entry_points={"console_scripts": ["ppg-cvae=launch.cli:main"]},
)

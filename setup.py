"""jaxlm: JAX-native RL for language models and the science of scaling it."""
import setuptools

setuptools.setup(
    name="jaxlm",
    version="0.1.0",
    description="Reinforcement learning on language models and scaling science in JAX.",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=setuptools.find_packages(include=["jaxlm", "jaxlm.*", "experiments",
                                               "experiments.*", "benchmarks"]),
    package_data={"jaxlm.envs": ["data/*.txt"]},
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.6",
        "flax>=0.10",
        "optax>=0.2.4",
        "orbax-checkpoint>=0.11",
        "chex>=0.1.88",
        "scipy>=1.12",
        "numpy>=1.26",
        "absl-py>=2.0",
        "ml_collections>=0.1.1",
        "tqdm>=4.66",        # progress bars with rate and ETA
        "safetensors>=0.4",  # pickle-free weight files for HF import/export
        "matplotlib>=3.8",   # learning curves and fitted-law plots
        "tensorboardX>=2.6", # TensorBoard event files without TensorFlow
    ],
    extras_require={
        "hf": ["transformers>=4.45", "torch==2.13.0", "accelerate>=1.0"],
        "test": ["pytest>=8", "pytest-xdist>=3.5", "transformers>=4.45", "torch==2.13.0",
                 "gguf>=0.10", "blackjax>=1.7,<2"],
        "gguf": ["gguf>=0.10"],
        "bayes": ["blackjax>=1.7,<2"],  # NUTS for the emergence-law posterior
        "bench": ["trl==1.16.0", "torch==2.13.0", "transformers>=4.45"],
    },
)

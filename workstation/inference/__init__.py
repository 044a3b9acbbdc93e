"""Local AI inference. torch is imported only by the modules that run a network, and only when they run."""

"""diffsteps: how many denoising steps does each kind of diffusion model need?"""

__version__ = "0.1.0"

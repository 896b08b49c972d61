"""Networks: the shared U-Net, VDM's learned schedule and DDGAN's generator and discriminator. Import from the
submodules: nothing is imported here, so that a job's code holds the networks it builds and no other."""

"""Pure-PyTorch parts of impasto: stylization networks, loss networks, losses, analysis."""

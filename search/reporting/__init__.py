"""The report's pictures: the wrong validation photos of a trial or a bundle, with Grad-CAM maps."""

"""Image ops that are not models: filtering, colour, superpixels, warps, resizing, padding."""

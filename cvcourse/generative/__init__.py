"""Generative models' objectives and training: GANs (chapter 03) and VAEs (chapter 04)."""

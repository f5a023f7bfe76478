"""One recipe per chapter: what the chapter does with the course's methods.

A recipe module holds a chapter's settings (a frozen dataclass whose defaults are the ``cpu`` profile's, with the
``smoke`` and ``gpu`` profiles' changes in ``OVERRIDES``), its targets, its data splits, its model builders and
its cached training. The notebook loads it (``cfg = recipe.load()``), the bench's entries call it, and the tests
check it, so all three run the same experiment.

=======================================  ==============================================
chapter                                  recipe
=======================================  ==============================================
00_setup_and_tour                        ``ch00_tour``
01_segmentation_basics                   ``ch01_segmentation_basics``
02_unet                                  ``ch02_unet``
03_gan                                   ``ch03_gan``
04_vae                                   ``ch04_vae``
05_diffusion                             ``ch05_diffusion``
06_guided_diffusion                      ``ch06_guided_diffusion``
07_latent_diffusion                      ``ch07_latent_diffusion``
08_object_detection                      ``ch08_object_detection``
09_anomaly_detection                     ``ch09_anomaly_detection``
10_generated_image_detection             ``ch10_generated_image_detection`` (and ``ch10_edits``)
11_generated_training_data               ``ch11_generated_training_data``
12_generated_street_scenes               ``ch12_generated_street_scenes``
13_denoise_then_detect                   ``ch13_denoise_then_detect``
14_boxes_from_noise                      ``ch14_boxes_from_noise``
appendix_ddp                             ``appendix_ddp``
=======================================  ==============================================

Shared by several chapters: ``training`` (the cached training helper), ``judge`` (the classifier that measures
generated glyphs), ``glyphs`` (the glyph splits and sample seed of chapters 03 to 07) and ``few_labels`` (the
few-label experiment of chapters 11 and 12). Chapters 13 and 14 keep their experiments in
``denoise_then_detect`` and ``boxes_from_noise``.
"""

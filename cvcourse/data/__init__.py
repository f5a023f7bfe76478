"""Datasets of the course: synthetic shapes, cells and street scenes generated on the fly, joint transforms,
degradations (noise, low light), real segmentation, detection and classification datasets, real and generated images
side by side, and the folders they live in."""

from cvcourse.data.cells import SyntheticCells
from cvcourse.data.degradations import RandomDegradation, brighten, gaussian_noise, low_light, low_light_noise_std
from cvcourse.data.detection import (
    DetectionScenes,
    coco_area_ranges,
    detection_scenes,
    detection_transforms,
)
from cvcourse.data.folders import DatasetNotFoundError, data_root, require_folder
from cvcourse.data.generated_folders import GeneratedImageSplit, generated_image_folder, shortcuts
from cvcourse.data.glyphs import Glyphs, glyph_tensors
from cvcourse.data.memory import materialize, shuffled_batches
from cvcourse.data.inspection import AnomalySplit, inspection_split
from cvcourse.data.mvtec import MVTEC_CATEGORIES, mvtec_ad
from cvcourse.data.real import ISBIStack, MaskFolder, oxford_pet
from cvcourse.data.real_classification import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    MNIST_CLASSES,
    cifar10,
    fashion_mnist,
    mnist,
)
from cvcourse.data.real_detection import VOC_CLASSES, PennFudan, PennFudanScenes, voc_detection
from cvcourse.data.streets import STREET_CLASSES, StreetScenes
from cvcourse.data.synthetic import (
    SHAPE_CLASSES,
    Scene,
    Shape,
    ShapesScenes,
    SingleShapes,
    add_noise,
    gradient_background,
    mask_boxes,
    max_objects_for,
    paint_shapes,
    place_shapes,
    random_color,
    random_gradient,
    random_pose,
    render_shape,
    semantic_map,
)
from cvcourse.data.transforms import (
    boxes_from_masks,
    collate_detection,
    drop_empty_objects,
    segmentation_transforms,
    train_transforms,
)

__all__ = [
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "MNIST_CLASSES",
    "MVTEC_CATEGORIES",
    "SHAPE_CLASSES",
    "STREET_CLASSES",
    "VOC_CLASSES",
    "AnomalySplit",
    "DatasetNotFoundError",
    "DetectionScenes",
    "GeneratedImageSplit",
    "Glyphs",
    "ISBIStack",
    "MaskFolder",
    "PennFudan",
    "PennFudanScenes",
    "RandomDegradation",
    "Scene",
    "Shape",
    "ShapesScenes",
    "SingleShapes",
    "StreetScenes",
    "SyntheticCells",
    "add_noise",
    "boxes_from_masks",
    "brighten",
    "cifar10",
    "coco_area_ranges",
    "collate_detection",
    "data_root",
    "detection_scenes",
    "detection_transforms",
    "drop_empty_objects",
    "fashion_mnist",
    "gaussian_noise",
    "generated_image_folder",
    "glyph_tensors",
    "gradient_background",
    "inspection_split",
    "low_light",
    "low_light_noise_std",
    "mask_boxes",
    "materialize",
    "max_objects_for",
    "mnist",
    "mvtec_ad",
    "oxford_pet",
    "paint_shapes",
    "place_shapes",
    "random_color",
    "random_gradient",
    "random_pose",
    "render_shape",
    "require_folder",
    "segmentation_transforms",
    "semantic_map",
    "shortcuts",
    "shuffled_batches",
    "train_transforms",
    "voc_detection",
]

"""Tiny datasets written in each real dataset's own on-disk format, for the loaders' tests and the gpu-profile
check: Oxford-IIIT Pet, the ISBI 2012 stacks, a folder of images and masks, Penn-Fudan, Pascal VOC, MVTec AD and
folders of real and generated images (CIFAKE, GenImage)."""

import numpy as np
from PIL import Image

PET_IDS = {"trainval": ["Abyssinian_1 1 1 1", "Abyssinian_2 1 1 1", "yorkshire_terrier_7 37 2 25"],
           "test": ["Abyssinian_3 1 1 1", "Bengal_4 6 1 4"]}
BAND_COLOURS = np.array([[230, 30, 30], [30, 230, 30], [30, 30, 230]], dtype=np.uint8)  # trimap 1, 2, 3
PEDESTRIAN_COLOURS = np.array([[200, 40, 40], [40, 200, 40]], dtype=np.uint8)
# Pedestrian k of an image: rows, columns (0-based, end excluded) of its rectangle in the 40 x 30 mask.
PEDESTRIANS = {"FudanPed00001": [(slice(5, 25), slice(3, 9)), (slice(10, 28), slice(20, 27))],
               "PennPed00002": [(slice(0, 30), slice(35, 40))]}


VOC_ITEMS = [("2007_000027", (48, 40), [("person", 5, 7, 20, 30)]),
             ("2008_000002", (36, 50), [("dog", 1, 1, 10, 12), ("tvmonitor", 20, 30, 36, 50)])]
VOC_OBJECT = """  <object>
    <name>{name}</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>0</difficult>
    <bndbox>
      <xmin>{xmin}</xmin>
      <ymin>{ymin}</ymin>
      <xmax>{xmax}</xmax>
      <ymax>{ymax}</ymax>
    </bndbox>
  </object>
"""
VOC_ANNOTATION = """<annotation>
  <folder>VOC2012</folder>
  <filename>{filename}</filename>
  <source>
    <database>The VOC2007 Database</database>
    <annotation>PASCAL VOC2007</annotation>
    <image>flickr</image>
  </source>
  <size>
    <width>{width}</width>
    <height>{height}</height>
    <depth>3</depth>
  </size>
  <segmented>0</segmented>
{objects}</annotation>
"""


def write_pet_dataset(root):
    """The layout torchvision.datasets.OxfordIIITPet reads: images/*.jpg, annotations/trimaps/*.png and the
    split files annotations/{trainval,test}.txt ("<id> <class> <species> <breed id>" per line).

    Each trimap has three vertical bands, 1 (pet), 2 (background), 3 (border), 16 pixels wide; the
    image paints each band in its own colour, so image and mask can be checked for alignment.
    """
    base = root / "oxford-iiit-pet"
    (base / "images").mkdir(parents=True)
    (base / "annotations" / "trimaps").mkdir(parents=True)
    trimap = np.repeat(np.repeat(np.array([[1, 2, 3]], dtype=np.uint8), 16, axis=1), 36, axis=0)  # 36 x 48
    for split, lines in PET_IDS.items():
        (base / "annotations" / f"{split}.txt").write_text("".join(line + "\n" for line in lines))
        for line in lines:
            name = line.split()[0]
            Image.fromarray(BAND_COLOURS[trimap - 1]).save(base / "images" / f"{name}.jpg", quality=95)
            Image.fromarray(trimap).save(base / "annotations" / "trimaps" / f"{name}.png")
    return base


def write_stack(path, pages):
    """A multi-page TIFF, as the ISBI 2012 volumes are stored."""
    frames = [Image.fromarray(page) for page in pages]
    frames[0].save(path, save_all=True, append_images=frames[1:])


def write_mask_folder(root, stems=("a", "b", "c"), size=(10, 8)):
    """images/<stem>.png|.jpg and masks/<stem>.png holding class ids 0..2 (a palette PNG for one)."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    masks = {}
    for number, stem in enumerate(stems):
        width, height = size
        image = np.full((height, width, 3), 30 * number % 256, dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"{stem}{'.jpg' if number % 2 else '.png'}")
        mask = (np.arange(width)[None, :] * 3 // width).repeat(height, axis=0).astype(np.uint8)
        masks[stem] = mask
        picture = Image.fromarray(mask)
        if number == 2:
            picture = picture.convert("P")
        picture.save(root / "masks" / f"{stem}.png")
    return masks


def write_penn_fudan(root, count=len(PEDESTRIANS)):
    """PennFudanPed/PNGImages/<name>.png (RGB) and PedMasks/<name>_mask.png, pedestrian k painted with id k.

    The first mask is a palette PNG like the real ones, the others grayscale ones; each pedestrian is
    painted in the image in its own colour, so image and masks can be checked for alignment. Images after
    the ``PEDESTRIANS`` ones (``count`` in all) repeat their layouts as FudanPed00003, FudanPed00004, ...
    """
    base = root / "PennFudanPed"
    (base / "PNGImages").mkdir(parents=True)
    (base / "PedMasks").mkdir()
    layouts = list(PEDESTRIANS.items())
    layouts += [(f"FudanPed{number:05d}", layouts[number % len(layouts)][1])
                for number in range(len(layouts) + 1, count + 1)]
    for number, (name, rectangles) in enumerate(layouts):
        image = np.full((30, 40, 3), 90, dtype=np.uint8)
        mask = np.zeros((30, 40), dtype=np.uint8)
        for k, (rows, columns) in enumerate(rectangles, start=1):
            image[rows, columns] = PEDESTRIAN_COLOURS[k - 1]
            mask[rows, columns] = k
        Image.fromarray(image).save(base / "PNGImages" / f"{name}.png")
        picture = Image.fromarray(mask)
        (picture.convert("P") if number == 0 else picture).save(base / "PedMasks" / f"{name}_mask.png")
    return base


def write_voc(root, items=VOC_ITEMS):
    """VOCdevkit/VOC2012/{JPEGImages/*.jpg, Annotations/*.xml, ImageSets/Main/train.txt}, as in the VOC
    archive. Each object's box is painted white on a black image, so image and boxes can be checked."""
    voc = root / "VOCdevkit" / "VOC2012"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (voc / folder).mkdir(parents=True)
    for name, (width, height), objects in items:
        image = np.zeros((height, width, 3), dtype=np.uint8)
        for _, xmin, ymin, xmax, ymax in objects:
            image[ymin - 1:ymax, xmin - 1:xmax] = 255  # VOC's pixels xmin..xmax, 1-based and inclusive
        Image.fromarray(image).save(voc / "JPEGImages" / f"{name}.jpg", quality=100)
        xml = "".join(VOC_OBJECT.format(name=c, xmin=x0, ymin=y0, xmax=x1, ymax=y1) for c, x0, y0, x1, y1 in objects)
        (voc / "Annotations" / f"{name}.xml").write_text(
            VOC_ANNOTATION.format(filename=f"{name}.jpg", width=width, height=height, objects=xml))
    (voc / "ImageSets" / "Main" / "train.txt").write_text("".join(f"{name}\n" for name, _, _ in items))
    return voc


def write_isbi(root, pages=30, size=(128, 128), seed=0):
    """isbi2012/train-volume.tif and train-labels.tif: ``pages`` random 8-bit pages and labels of 0 and 255."""
    rng = np.random.default_rng(seed)
    folder = root / "isbi2012"
    folder.mkdir(parents=True, exist_ok=True)
    write_stack(folder / "train-volume.tif", rng.integers(0, 256, (pages, *size), dtype=np.uint8))
    write_stack(folder / "train-labels.tif", np.where(rng.random((pages, *size)) < 0.7, 255, 0).astype(np.uint8))
    return folder


MVTEC_SQUARE = (slice(4, 12), slice(8, 16))  # rows, columns of the defect in a 20 x 20 image; (2:6, 4:8) at 10 x 10
# category -> (PIL mode, {split/defect: number of images}); every defective image has one white square
MVTEC_CATEGORIES = {"bottle": ("RGB", {"train/good": 3, "test/good": 1, "test/broken_large": 2,
                                       "test/contamination": 1}),
                    "grid": ("L", {"train/good": 2, "test/good": 2, "test/bent": 1}),
                    "carpet": ("RGB", {"train/good": 2, "test/good": 1, "test/hole": 1}),
                    "metal_nut": ("RGB", {"train/good": 2, "test/good": 1, "test/scratch": 1})}


def write_mvtec(root, categories=MVTEC_CATEGORIES):
    """<category>/{train,test}/<defect>/NNN.png and ground_truth/<defect>/NNN_mask.png (0 / 255), as in the
    MVTec AD archive. A defect is a white square on a dark image, and its mask is white on the same pixels."""
    for category, (mode, counts) in categories.items():
        for folder, count in counts.items():
            defect = folder.split("/")[1]
            (root / category / folder).mkdir(parents=True)
            for number in range(count):
                image = np.full((20, 20, 3), 40 + 20 * number, dtype=np.uint8)
                image[..., 1] += 10  # not grey, so that RGB and grayscale categories differ
                if defect != "good":
                    image[MVTEC_SQUARE] = 255
                    mask = np.zeros((20, 20), dtype=np.uint8)
                    mask[MVTEC_SQUARE] = 255
                    (root / category / "ground_truth" / defect).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask).save(root / category / "ground_truth" / defect / f"{number:03d}_mask.png")
                Image.fromarray(image).convert(mode).save(root / category / folder / f"{number:03d}.png")
    return root


# layout -> (folder of real images, folder of generated images) inside a split's folder, as each dataset unpacks
GENERATED_LAYOUTS = {"CIFAKE": ("REAL", "FAKE"), "GenImage": ("nature", "ai"), "generic": ("real", "generated")}
REAL_GREY, GENERATED_GREY = 40, 200  # a real image is dark, a generated one light


def write_generated_folder(root, layout="generic", split="train", real=((".jpg", (40, 30)),) * 3,
                           generated=((".png", (32, 32)),) * 2):
    """<root>/<split>/<real folder>/NNN<suffix> and <generated folder>/NNN<suffix> in one of ``GENERATED_LAYOUTS``,
    one file per (suffix, (width, height)) of ``real`` and ``generated``; an empty tuple leaves the folder out.

    A real image is dark, a generated one light (not grey: green is 10 higher), so labels can be checked against
    pixels; JPEG files are written at quality 95, as real photos often are."""
    for folder, files, grey in zip(GENERATED_LAYOUTS[layout], (real, generated), (REAL_GREY, GENERATED_GREY)):
        for number, (suffix, (width, height)) in enumerate(files):
            (root / split / folder).mkdir(parents=True, exist_ok=True)
            image = np.full((height, width, 3), grey, dtype=np.uint8)
            image[..., 1] += 10
            options = {"quality": 95} if suffix.lower() in (".jpg", ".jpeg") else {}
            Image.fromarray(image).save(root / split / folder / f"{number:03d}{suffix}", **options)
    return root


def write_every_format(root):
    """Every dataset the chapters load, in the folders where they look for it (``data_root()`` = ``root``)."""
    write_pet_dataset(root)
    write_isbi(root)
    write_mask_folder(root / "my_segmentation")
    write_penn_fudan(root, count=60)  # a train split of 36 photos: larger than the gpu profile's batch
    write_voc(root)
    write_mvtec(root / "mvtec_ad")
    for split in ("train", "test"):
        write_generated_folder(root / "cifake", layout="CIFAKE", split=split, real=((".jpg", (32, 32)),) * 4,
                               generated=((".png", (32, 32)),) * 4)
    return root

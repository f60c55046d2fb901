"""Random image augmentations on H x W x C numpy arrays."""

import numpy as np


class Transform:
    """A callable that maps one sample to another."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class RandomFlipHorizontal(Transform):
    """Flip an H x W x C image left-right (along W) with probability ``p``.

    Draws ``np.random.rand()`` once per call.
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: np.ndarray) -> np.ndarray:
        flip_img = np.random.rand() < self.p
        return img[:, ::-1, :] if flip_img else img


class RandomCrop(Transform):
    """Zero-pad H and W by ``padding``, then crop the original size at a random offset.

    Draws ``shift_x, shift_y = np.random.randint(-padding, padding + 1, size=2)``;
    the crop starts at ``(padding + shift_x, padding + shift_y)``, so the image moves by
    ``(-shift_x, -shift_y)``.
    """

    def __init__(self, padding: int = 3) -> None:
        self.padding = padding

    def __call__(self, img: np.ndarray) -> np.ndarray:
        pad = self.padding
        shift_x, shift_y = np.random.randint(low=-pad, high=pad + 1, size=2)
        h, w = img.shape[0], img.shape[1]
        padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)))
        top, left = pad + shift_x, pad + shift_y
        return padded[top:top + h, left:left + w, :]

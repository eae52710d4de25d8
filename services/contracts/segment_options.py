"""What a segment client may ask for: models, classes and stabilization methods with their
parameter ranges. Shared by the gateway (400 answers) and the segment worker, which
imports nothing heavy from here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

# torchvision's VOC label set, index = class id in the models' output.
VOC_CLASSES: tuple[str, ...] = (
    "__background__",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

MODELS: dict[str, str] = {
    "deeplabv3_resnet101": "DeepLabv3 ResNet-101 (the origin's model; most accurate, slowest)",
    "deeplabv3_resnet50": "DeepLabv3 ResNet-50",
    "deeplabv3_mobilenet_v3_large": "DeepLabv3 MobileNetV3-Large",
    "lraspp_mobilenet_v3_large": "LR-ASPP MobileNetV3-Large (fastest)",
}
ModelName = Literal[
    "deeplabv3_resnet101", "deeplabv3_resnet50", "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large"
]


def class_index(name: str) -> int:
    try:
        return VOC_CLASSES.index(name)
    except ValueError:
        raise ValueError(f"unknown class {name!r}; one of: {', '.join(VOC_CLASSES[1:])}") from None


class SegmentParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelName = "lraspp_mobilenet_v3_large"
    target_class: str = Field("person", description="a VOC class name, see GET /api/v1/segment/classes")
    processing_size: int = Field(520, ge=128, le=1024, description="longer frame side in px, 128–1024")
    batch_size: int = Field(4, ge=1, le=32, description="frames per inference batch, 1–32")

    def class_id(self) -> int:
        return class_index(self.target_class)


class StabilizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = Field(
        ..., description="moving_average | median | exponential | confidence_gated | hysteresis | flow_ema"
    )
    params: dict[str, Any] = {}
    callback_url: str | None = Field(
        None, max_length=2048, description="told once when this result set ends (default: the video's callback_url)"
    )


# --------------------------------------------------------------------------- stabilization options
# The API ranges of each method. The filters in services.segment.stabilize accept wider
# mathematical ranges (window 1, alpha 1: the identity); users get these.


def _in_range(handler: ValidatorFunctionWrapHandler, value: Any, message: str) -> Any:
    """Run pydantic's own checks, replacing their bound-by-bound message with the range."""
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(f"{message} (got {value!r})") from None


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowOptions(_Options):
    window: int = Field(5, ge=3, le=9, description="window, odd, 3–9 frames")

    @field_validator("window", mode="wrap")
    @classmethod
    def _window(cls, v: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        v = _in_range(handler, v, "window must be an odd integer in 3–9")
        if v % 2 == 0:
            raise ValueError(f"window must be an odd integer in 3–9 (got {v})")
        return v


class MovingAverageOptions(WindowOptions):
    pass


class MedianOptions(WindowOptions):
    pass


class ExponentialOptions(_Options):
    alpha: float = Field(
        0.5,
        ge=0.1,
        le=0.9,
        allow_inf_nan=False,
        description="weight of the newest frame, 0.1–0.9 (lower = smoother, slower)",
    )

    @field_validator("alpha", mode="wrap")
    @classmethod
    def _alpha(cls, v: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _in_range(handler, v, "alpha must be a number in 0.1–0.9")


class ConfidenceGatedOptions(_Options):
    combine_with_previous_ratio: float = Field(
        0.7,
        ge=0.1,
        le=0.9,
        allow_inf_nan=False,
        description="how far an uncertain pixel is pulled towards the previous output, 0.1–0.9",
    )

    @field_validator("combine_with_previous_ratio", mode="wrap")
    @classmethod
    def _ratio(cls, v: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _in_range(handler, v, "combine_with_previous_ratio must be a number in 0.1–0.9")


class HysteresisOptions(_Options):
    low: float = Field(
        0.3,
        gt=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="switch-off threshold, strictly between 0 and 1, below high",
    )
    high: float = Field(
        0.7, gt=0.0, lt=1.0, allow_inf_nan=False, description="switch-on threshold, strictly between 0 and 1, above low"
    )

    @field_validator("low", "high", mode="wrap")
    @classmethod
    def _threshold(cls, v: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        return _in_range(handler, v, f"{info.field_name} must be a number strictly between 0 and 1")

    @model_validator(mode="after")
    def _ordered(self) -> HysteresisOptions:
        if not self.high > self.low:
            raise ValueError(f"high must be greater than low (got low={self.low}, high={self.high})")
        return self


class FlowEmaOptions(_Options):
    alpha: float = Field(
        0.5, ge=0.1, le=0.9, allow_inf_nan=False, description="weight of the newest frame, 0.1–0.9 (lower = smoother)"
    )
    flow_preset: Literal["ultrafast", "fast"] = Field("ultrafast", description="OpenCV DIS preset: ultrafast or fast")
    flow_max_side: int = Field(
        320, ge=64, le=1024, description="longer side of the frames the flow is computed on, 64–1024 px"
    )

    @field_validator("alpha", mode="wrap")
    @classmethod
    def _alpha(cls, v: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _in_range(handler, v, "alpha must be a number in 0.1–0.9")

    @field_validator("flow_max_side", mode="wrap")
    @classmethod
    def _max_side(cls, v: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _in_range(handler, v, "flow_max_side must be an integer in 64–1024")


OPTIONS: dict[str, type[_Options]] = {
    "moving_average": MovingAverageOptions,
    "median": MedianOptions,
    "exponential": ExponentialOptions,
    "confidence_gated": ConfidenceGatedOptions,
    "hysteresis": HysteresisOptions,
    "flow_ema": FlowEmaOptions,
}
METHODS: tuple[str, ...] = tuple(OPTIONS)


def parse_options(method: str, params: Mapping[str, Any] | None = None) -> _Options:
    """The validated options of ``method``; raises ValueError for an unknown method and
    pydantic.ValidationError (a ValueError) for parameters outside the API ranges."""
    if method not in OPTIONS:
        raise ValueError(f"unknown stabilization method {method!r}; expected one of {', '.join(METHODS)}")
    return OPTIONS[method].model_validate(dict(params or {}))


def validate_stabilize(method: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The method's parameters with defaults filled in, or ValueError naming the range."""
    return parse_options(method, params).model_dump()


def method_ranges() -> dict[str, dict[str, Any]]:
    """Per method, each parameter's default, bounds and description (for clients and the UI)."""
    out: dict[str, dict[str, Any]] = {}
    for method, model in OPTIONS.items():
        props = model.model_json_schema()["properties"]
        out[method] = {
            name: {
                k: v
                for k, v in prop.items()
                if k
                in (
                    "default",
                    "minimum",
                    "maximum",
                    "exclusiveMinimum",
                    "exclusiveMaximum",
                    "enum",
                    "description",
                    "type",
                )
            }
            for name, prop in props.items()
        }
    return out

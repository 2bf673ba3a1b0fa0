"""A custom, registered Keras layer for the keras recipes (imports keras)."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="zoo")
class Scale(keras.layers.Layer):
    def __init__(self, factor: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs: Any) -> Any:
        return inputs * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}

__version__ = "0.2.0"

import os as _os

# ONNX Runtime (1.2x) otherwise records a device id and usage data under ~/.cache/Microsoft/DeveloperTools when
# imported: srin writes nothing the user did not name and sends no telemetry (read by onnxruntime at import)
_os.environ["ORT_DISABLE_TELEMETRY"] = "1"

"""LDLM: latent diffusion language models, Hugging Face native.

Importing the package registers `LDLMConfig` and `LDLMForDiffusionGeneration` with `AutoConfig`, `AutoModel` and
`AutoModelForCausalLM` in this process (idempotent); saved checkpoints load elsewhere through remote code.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_ldlm import PRESETS, LDLMConfig, LDLMConfigError
from .generation_config import LDLMGenerationConfig
from .generation_ldlm import HeadChunking, LDLMGenerationMixin, LDLMGenerationOutput
from .modeling_ldlm import LDLMForDiffusionGeneration, LDLMOutput, LDLMPreTrainedModel

AutoConfig.register("ldlm", LDLMConfig, exist_ok=True)
AutoModel.register(LDLMConfig, LDLMForDiffusionGeneration, exist_ok=True)
AutoModelForCausalLM.register(LDLMConfig, LDLMForDiffusionGeneration, exist_ok=True)

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "HeadChunking",
    "LDLMConfig",
    "LDLMConfigError",
    "LDLMForDiffusionGeneration",
    "LDLMGenerationConfig",
    "LDLMGenerationMixin",
    "LDLMGenerationOutput",
    "LDLMOutput",
    "LDLMPreTrainedModel",
]

from .spec import ProviderSpec

# Gemini through its OpenAI-compatible endpoint.
SPEC = ProviderSpec(
    name="gemini",
    label="Google Gemini (OpenAI-compatible endpoint)",
    default_base_url="https://generativelanguage.googleapis.com/v1beta/openai",
)

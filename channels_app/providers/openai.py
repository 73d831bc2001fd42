from .spec import ProviderSpec

SPEC = ProviderSpec(
    name="openai",
    label="OpenAI",
    default_base_url="https://api.openai.com/v1",
    chat_output_field="max_completion_tokens",
    native_responses=True,
)

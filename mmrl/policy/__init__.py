"""The policy LLM side: prompt rendering and the structured output format."""

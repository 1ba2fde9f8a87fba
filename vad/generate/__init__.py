"""What an LLM makes: Evol-Instruct evolutions with answers (evolve, elimination) and translated SafeRLHF pairs (translate), from the prompt templates in prompts/."""

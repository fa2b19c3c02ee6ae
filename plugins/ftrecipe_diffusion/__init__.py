"""ftrecipe's Stable Diffusion plugin: DreamBooth subject fine-tuning with prior preservation."""

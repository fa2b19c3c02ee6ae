"""ftrecipe text plugin: causal-LM and classification fine-tuning building blocks."""

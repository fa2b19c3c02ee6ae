"""Image classification with torchvision models: a new head for the recipe's labels."""

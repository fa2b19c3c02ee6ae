"""Object detection with torchvision's Faster R-CNN: the box predictor replaced for the recipe's classes."""

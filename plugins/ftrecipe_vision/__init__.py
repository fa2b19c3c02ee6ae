"""ftrecipe-vision: torchvision image classification and object detection (ResNet, Faster R-CNN)."""

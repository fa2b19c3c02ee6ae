"""`ftrecipe plan` and `ftrecipe diff`: an account of a recipe before any GPU is rented, and of a change to one."""

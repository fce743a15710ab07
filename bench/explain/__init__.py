"""Where a detector looks and what it separates: class-activation maps (pytorch-grad-cam) on the declared
target layer, pooled features through the declared hook, their t-SNE, numbers on both, and the paper's
Visualization figure. Only the registry's declarations (``cam_target_layer``, ``feature_layer``) are used."""

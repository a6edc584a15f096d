"""network3-style ConvNet: conv-pool stacks, fully connected layers, dropout, softmax."""

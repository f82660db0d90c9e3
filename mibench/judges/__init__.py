"""Video judges (Video-LLMs that rate videos), registered by name through the model cards."""

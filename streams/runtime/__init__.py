"""The long-lived parts of one worker, started with the Faust app: the Redis store, the model versions
served from MLflow (hot-swapped), the inference pipeline, the drift monitor and the live event hub.
"""

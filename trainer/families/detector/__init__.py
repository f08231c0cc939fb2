"""The garment detector family: TF Model Garden RetinaNet or Faster R-CNN on the pretrained
Lite0 trunk (see ``spec``, ``model_garden`` and ``trainer``)."""

"""ImageNet-1k reference data (no code): the class ids a photo of a garment, a shoe or a worn
accessory may fairly be given, with short names. The port check of the shipped EfficientNet-Lite0
(``scripts/check_pretrained_port.py`` and its test) counts photos with one of them in the top 5.
"""

CLOTHING_CLASSES = {
    399: "abaya", 400: "academic gown", 411: "apron", 445: "bikini", 451: "bolo tie",
    452: "bonnet", 457: "bow tie", 459: "brassiere", 474: "cardigan", 501: "cloak", 502: "clog",
    514: "cowboy boot", 515: "cowboy hat", 552: "feather boa", 568: "fur coat", 578: "gown",
    601: "hoopskirt", 608: "jean", 610: "jersey", 614: "kimono", 617: "lab coat", 630: "loafer",
    638: "maillot", 639: "tank suit", 652: "military uniform", 655: "miniskirt", 658: "mitten",
    689: "overskirt", 697: "pajama", 735: "poncho", 770: "running shoe", 774: "sandal",
    775: "sarong", 806: "sock", 808: "sombrero", 824: "stole", 834: "suit", 841: "sweatshirt",
    842: "swimming trunks", 869: "trench coat", 887: "vestment", 906: "windsor tie"}

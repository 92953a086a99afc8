"""Reading sentence-pair files and making the offline demo data (no Keras here)."""

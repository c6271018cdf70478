"""Index choice: uniform draws (with the fused pair copy), the priority sum tree, HER's episode
index."""

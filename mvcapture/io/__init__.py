"""File input and output: atomic writes, multi-view clips, video/audio, BVH, exports."""

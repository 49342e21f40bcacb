"""The file scan: an inventory of the folder and one scanner per concern, run by ``stage.run_file_scan``.

inventory (sha256, size, format by content), safetensors_header, pickle_streams + pickle_opcodes,
remote_code, templates + template_render, paths, weight_formats (the policy's formats), weights_present.
"""

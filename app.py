"""SAM 2 video masklets: the Hugging Face Space (Gradio 6). `python app.py --help` for the options.

Upload a video, click on objects, track them through the video and download the masks. The model is
`--model` or $SAM2_HF_MODEL (a Hub id, a folder saved with save_pretrained, or a Meta .pt), by default
facebook/sam2.1-hiera-tiny (downloaded on first run); `--random-weights` runs offline on an untrained
tiny SAM 2.1 whose masks are meaningless.
"""

from space.config import parse_args  # `space` comes first: it imports ZeroGPU's `spaces` before torch
from space.ui import build_demo, launch


def main(argv=None) -> None:
    config, args = parse_args(argv)
    launch(build_demo(config), config, server_name=args.host, server_port=args.port, share=args.share)


if __name__ == "__main__":
    main()

"""Audio front end (decoding, log-mel windows) and the audio tower."""

from encoders.audio.frontend import AudioInfo, FrontendConfig, decode_audio, probe_audio

__all__ = ["AudioInfo", "FrontendConfig", "decode_audio", "probe_audio"]

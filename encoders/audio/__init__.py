"""Audio front end (decoding, log-mel windows) and the audio tower."""

from encoders.audio.frontend import AudioInfo, AudioTooLarge, FrontendConfig, decode_audio, probe_audio

__all__ = ["AudioInfo", "AudioTooLarge", "FrontendConfig", "decode_audio", "probe_audio"]

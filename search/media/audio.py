"""Audio: caps from the header (channels, sample rate, duration, decoded samples) before any
decoding, then a block decode that downmixes to mono and resamples as it goes.

WAV, FLAC, Ogg and MP3 go through libsndfile; M4A (AAC, ALAC) and WebM (Opus, Vorbis) through
PyAV, in process, from memory: the demuxer is forced to the one the allowlist names (no probing,
so no playlist, concat or image demuxer), no protocol may be opened (`protocol_whitelist`), MP4
external data references are off, and only allowlisted codecs are decoded. Nothing is spawned.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from encoders.audio.frontend import AudioTooLarge, decode_audio, probe_audio
from encoders.base import AudioDecodeError
from search.media.media_formats import BY_MIME
from search.media.rejections import CorruptMedia, MediaTooLarge, UnsupportedMediaType

# Codecs PyAV may decode (FFmpeg decoder names); a container holding anything else is refused.
PYAV_CODECS = {"aac", "aac_fixed", "alac", "opus", "libopus", "vorbis", "libvorbis", "mp3", "mp3float", "flac",
               "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f32be"}
PYAV_OPTIONS = {"protocol_whitelist": "none", "enable_drefs": "0", "use_absolute_path": "0"}


@dataclass(frozen=True)
class AudioLimits:
    seconds: float
    samples: int  # decoded samples: frames x channels
    channels: int
    sample_rate: int
    output_rate: int  # decoded to mono at this rate at most

    @classmethod
    def from_settings(cls, *, query: bool = False) -> AudioLimits:
        return cls(
            seconds=settings.SEARCH_MAX_QUERY_AUDIO_SECONDS if query else settings.SEARCH_MAX_AUDIO_SECONDS,
            samples=settings.SEARCH_MAX_AUDIO_SAMPLES,
            channels=settings.SEARCH_MAX_AUDIO_CHANNELS,
            sample_rate=settings.SEARCH_MAX_AUDIO_SAMPLE_RATE,
            output_rate=settings.SEARCH_AUDIO_ANALYSIS_RATE,
        )


@dataclass
class DecodedAudio:
    waveform: np.ndarray  # mono float32 at `rate`
    rate: int
    source_rate: int  # the file's own
    duration: float
    channels: int


def decode(data: bytes, mime: str, limits: AudioLimits, *, what: str = "") -> DecodedAudio:
    """`what`: how the caps are named in messages ("", or " for a query clip")."""
    # Caps come from the header first, then a block decode; raises a `MediaRejected` subclass.
    fmt = BY_MIME[mime]
    if fmt.decoder == "pyav":
        return _decode_pyav(data, fmt.demuxer, limits, what)
    try:
        info = probe_audio(data)
    except AudioDecodeError as exc:
        raise CorruptMedia(f"the audio cannot be read: {exc}") from None
    check_header(info.samplerate, info.channels, info.duration, limits, what)
    try:
        # One second past the cap is decoded: a header that lies about its length is caught below.
        waveform, rate = decode_audio(
            data, max_seconds=limits.seconds + 1, max_samples=limits.samples, max_channels=limits.channels,
            max_rate=limits.output_rate,
        )
    except AudioTooLarge as exc:
        raise MediaTooLarge(str(exc)) from None
    except AudioDecodeError as exc:
        raise CorruptMedia(f"the audio cannot be decoded: {exc}") from None
    return _checked(waveform, rate, info.samplerate, info.channels, limits, what)


def check_header(rate: int, channels: int, duration: float, limits: AudioLimits, what: str) -> None:
    if rate <= 0 or channels <= 0:
        raise CorruptMedia(f"the audio header is invalid ({rate} Hz, {channels} channels)")
    if rate > limits.sample_rate:
        raise MediaTooLarge(f"the audio's sample rate is {rate} Hz; the limit is {limits.sample_rate} Hz")
    if channels > limits.channels:
        raise MediaTooLarge(f"the audio has {channels} channels; the limit is {limits.channels}")
    if duration > limits.seconds:
        raise MediaTooLarge(f"the audio lasts {duration:.1f} s; the limit{what} is {limits.seconds:g} s")
    samples = round(duration * rate) * channels
    if samples > limits.samples:
        raise MediaTooLarge(
            f"the audio has {samples:,} samples ({channels} channels at {rate} Hz for {duration:.1f} s); "
            f"the limit is {limits.samples:,}"
        )


def _checked(waveform: np.ndarray, rate: int, source_rate: int, channels: int, limits: AudioLimits,
             what: str) -> DecodedAudio:
    duration = len(waveform) / rate
    if duration > limits.seconds:
        raise MediaTooLarge(f"the audio lasts more than {limits.seconds:g} s; the limit{what} is {limits.seconds:g} s")
    if duration < 0.05:
        raise CorruptMedia("the audio is shorter than 50 ms")
    if not np.isfinite(waveform).all():
        raise CorruptMedia("the audio contains invalid samples")
    return DecodedAudio(waveform, rate, source_rate, round(duration, 3), channels)


def _decode_pyav(data: bytes, demuxer: str, limits: AudioLimits, what: str) -> DecodedAudio:
    import av

    try:
        container = av.open(io.BytesIO(data), mode="r", format=demuxer, options=PYAV_OPTIONS)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise CorruptMedia(f"the audio cannot be read ({type(exc).__name__})") from None
    with container:
        if any(not _is_cover_art(stream) for stream in container.streams.video):
            raise UnsupportedMediaType("video is not supported; upload the sound alone (e.g. as M4A or Opus)")
        if not container.streams.audio:
            raise CorruptMedia("the file holds no audio stream")
        stream = container.streams.audio[0]
        codec = stream.codec_context
        if codec.name not in PYAV_CODECS:
            raise UnsupportedMediaType(f"the audio codec {codec.name!r} is not supported")
        rate = int(codec.sample_rate or 0)
        channels = int(codec.layout.nb_channels if codec.layout is not None else 0)
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        check_header(rate, channels, max(duration, 0.0), limits, what)
        out_rate = min(rate, limits.output_rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=out_rate)
        max_frames = int((limits.seconds + 1) * rate)
        decoded = 0
        chunks: list[np.ndarray] = []
        try:
            for packet_count, packet in enumerate(container.demux(stream)):
                if packet_count > 10_000 + 1000 * limits.seconds:  # at most one packet per millisecond
                    raise CorruptMedia("the audio stream has too many packets")
                for frame in packet.decode():
                    if frame.sample_rate != rate or frame.layout.nb_channels != channels:
                        raise CorruptMedia("the audio changes its sample rate or channels midway")
                    decoded += frame.samples
                    if decoded * channels > limits.samples:
                        raise MediaTooLarge(f"the audio has more than {limits.samples:,} samples")
                    for out in resampler.resample(frame):
                        chunks.append(out.to_ndarray().reshape(-1))
                    if decoded > max_frames:
                        break
                if decoded > max_frames:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise CorruptMedia(f"the audio cannot be decoded ({type(exc).__name__})") from None
    if not chunks:
        raise CorruptMedia("the audio contains no samples")
    waveform = np.concatenate(chunks).astype(np.float32, copy=False)
    return _checked(waveform, out_rate, rate, channels, limits, what)


def _is_cover_art(stream) -> bool:
    import av

    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):
        return False

"""Expected CREMA-D audio features of a few FSDD recordings, computed as the CREMA-D
reference code (OGM-GE's CramedDataset, used by the MLB authors) computes them:

    samples, rate = librosa.load(path, sr=22050)
    resamples = np.tile(samples, 3)[:22050 * 3]
    resamples[resamples > 1.] = 1.; resamples[resamples < -1.] = -1.
    spectrogram = np.log(np.abs(librosa.stft(resamples, n_fft=512, hop_length=353)) + 1e-7)

CREMA-D clips last over a second, so three copies fill the 3 s; FSDD's are shorter, so this
script tiles as many copies as 3 s needs (what BalanceLab's tiling does for any length).
The Rust audio path (backend/src/data/audio.rs, resample.rs) must match to 1e-4. Run with
librosa installed (not a project dependency):

    python scripts/reference/crema_audio.py $BALANCELAB_DATA_DIR > backend/tests/fixtures/crema_audio.json
"""
import json
import sys

import librosa
import numpy as np
import soxr

FILES = ["0_george_0.wav", "7_theo_12.wav", "9_yweweler_49.wav", "4_lucas_30.wav"]
FRAMES = [0, 1, 60, 120, 187]
RATE, CLIP = 22050, 22050 * 3

out = {"librosa": librosa.__version__, "soxr": soxr.__version__, "numpy": np.__version__, "files": []}
for name in FILES:
    samples, rate = librosa.load(f"{sys.argv[1]}/fsdd/recordings/{name}", sr=RATE)
    tiled = np.tile(samples, CLIP // len(samples) + 1)[:CLIP]
    tiled = np.clip(tiled, -1.0, 1.0)
    spectrogram = np.log(np.abs(librosa.stft(tiled, n_fft=512, hop_length=353)) + 1e-7)
    out["files"].append({
        "name": name,
        "resampled_length": len(samples),
        "resampled_head": [float(v) for v in samples[:64]],
        "resampled_middle": [float(v) for v in samples[len(samples) // 2:len(samples) // 2 + 64]],
        "shape": list(spectrogram.shape),
        "mean": float(spectrogram.mean()),
        "frames": {str(t): [float(v) for v in spectrogram[:, t]] for t in FRAMES},
    })
json.dump(out, sys.stdout)

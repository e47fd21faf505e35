"""Expected log spectrograms of a few FSDD recordings, computed with librosa.

The Rust audio path (backend/src/data/audio.rs) must match these to 1e-4. Run with numpy and
librosa installed (not project dependencies):

    python scripts/reference/fsdd_stft.py $BALANCELAB_DATA_DIR > backend/tests/fixtures/fsdd_stft.json
"""
import json
import sys

import librosa
import numpy as np

FILES = ["0_george_0.wav", "7_theo_12.wav", "9_yweweler_49.wav", "4_lucas_30.wav"]
FRAMES = [0, 1, 20, 40, 62]
CLIP = 8000  # 1 s at 8 kHz

out = {"librosa": librosa.__version__, "numpy": np.__version__, "files": []}
for name in FILES:
    samples, rate = librosa.load(f"{sys.argv[1]}/fsdd/recordings/{name}", sr=None)
    tiled = np.tile(samples, CLIP // len(samples) + 1)[:CLIP]
    spectrogram = np.log(np.abs(librosa.stft(tiled, n_fft=256, hop_length=128)) + 1e-7)
    out["files"].append({
        "name": name,
        "rate": int(rate),
        "samples": len(samples),
        "shape": list(spectrogram.shape),
        "mean": float(spectrogram.mean()),
        "frames": {str(t): [float(v) for v in spectrogram[:, t]] for t in FRAMES},
    })
json.dump(out, sys.stdout)

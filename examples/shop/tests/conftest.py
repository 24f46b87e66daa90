import sys
from pathlib import Path

# Make `import shop` work when running `pytest examples/` from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

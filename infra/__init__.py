"""Ferry's AWS CDK app (optional dependency group ``infra``; never shipped in a Lambda bundle).

``python -m infra`` synthesizes it offline; ``npx aws-cdk@^2 synth`` with ``infra/cdk.json`` does the
same for deployers. See infra/README.md.
"""

import os

# jsii's banners about the host's node version are noise for synthesis (node 20 works)
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "18,20,21,22,23")

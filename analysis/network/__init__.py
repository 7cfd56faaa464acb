"""The authors' dendritic network (Li et al. 2020), re-implemented in numpy with explicit gradients.

Why a package of its own: the paper's headline claims are about a network, not a device. These
modules rebuild the authors' SVHN network (``model``, ``layout``), train it with a held-out
validation split (``train``, ``data``), let the dendrite branches and synapses be *measured*
devices (``devices``), and save models with everything needed to rerun them (``modelfile``).
Power and platform analysis live in ``power`` / ``platforms`` / ``sweep``. Nothing heavy is
imported here, so ``import analysis.network`` stays cheap; see docs/network.md.
"""

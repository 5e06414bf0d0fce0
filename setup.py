"""Build the Cython kernels against the system CHOLMOD (SuiteSparse)."""
import os
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

SUITESPARSE_INCLUDE = os.environ.get("SUITESPARSE_INCLUDE", "/usr/include/suitesparse")

# (module, needs CHOLMOD): the CHOLMOD factor and kernel link it; the others use scipy's LAPACK
KERNELS = [("_kernel", False), ("_cholmod", True), ("_blocked", False), ("_glm", False), ("_crossprods", False),
           ("_pirls", False), ("_kernel_loop", False), ("_single_term", False), ("_pls", True), ("_moments", False),
           ("_pairs", False), ("_selinv", False), ("_sealed", False), ("_nbgenes", False), ("_pcg", False),
           ("_nested", False)]

extensions = [
    Extension(
        f"mmfast._ext.{name}",
        [f"src/mmfast/_ext/{name}.pyx"],
        include_dirs=[np.get_include()] + ([SUITESPARSE_INCLUDE] if cholmod else []),
        libraries=["cholmod"] if cholmod else [],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    )
    for name, cholmod in KERNELS
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["src"],
        compiler_directives={"language_level": "3", "boundscheck": False,
                             "wraparound": False, "cdivision": True},
    ),
)

"""Build the Cython kernels against the system CHOLMOD (SuiteSparse)."""
import os
import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

SUITESPARSE_INCLUDE = os.environ.get("SUITESPARSE_INCLUDE", "/usr/include/suitesparse")

extensions = [
    Extension(
        "mmfast._ext._cholmod",
        ["src/mmfast/_ext/_cholmod.pyx"],
        include_dirs=[np.get_include(), SUITESPARSE_INCLUDE],
        libraries=["cholmod"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    ),
    Extension(
        "mmfast._ext._blocked",
        ["src/mmfast/_ext/_blocked.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    ),
    Extension(
        "mmfast._ext._glm",
        ["src/mmfast/_ext/_glm.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    ),
    Extension(
        "mmfast._ext._crossprods",
        ["src/mmfast/_ext/_crossprods.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    ),
    Extension(
        "mmfast._ext._pirls",
        ["src/mmfast/_ext/_pirls.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    ),
    Extension(
        "mmfast._ext._pls",
        ["src/mmfast/_ext/_pls.pyx"],
        include_dirs=[np.get_include(), SUITESPARSE_INCLUDE],
        libraries=["cholmod"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["src"],
        compiler_directives={"language_level": "3", "boundscheck": False,
                             "wraparound": False, "cdivision": True},
    ),
)

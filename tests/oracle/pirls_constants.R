# lme4's PIRLS defaults that mmfast's PIRLS constants (src/mmfast/_ext/_pirls.pyx) are compared
# with: glmerControl()$tolPwrss and glmer's PIRLS iteration limit (mkGlmerDevfun's maxit).
# lme4's step-halving limit (maxstephalfit = 20 in src/external.cpp pwrssUpdate) is C++ only,
# not readable from R.  Writes tests/reference/pirls_constants.json.gz.
# Run from the repo root:  Rscript tests/oracle/pirls_constants.R
suppressMessages({library(lme4); library(jsonlite)})
out <- list(
  tolPwrss = glmerControl()$tolPwrss,
  glmer_maxit = eval(formals(lme4:::mkGlmerDevfun)$maxit),
  lme4_version = as.character(packageVersion("lme4")),
  R_version = R.version.string)
con <- gzfile("tests/reference/pirls_constants.json.gz", "w")
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA), con)
close(con)

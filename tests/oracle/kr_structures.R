# pbkrtest (through lmerTest's ddf = "Kenward-Roger") references for Kenward-Roger through
# structured G-side terms (tests/test_kr_structures.py).  pbkrtest cannot fit glmmTMB models, so
# each case is an lme4 model with the same marginal covariance V as a structured mmfast model:
#   diag(x | g)      == (x || g)
#   homcs(0 + f | g) == (1 | g) + (1 | g:f)   (same V when the fitted rho >= 0)
#   us(x | g)        == (x | g)
#   (1 | g) + homdiag(0 + f | g) == (1 | g) + (1 | g:f)   (an unstructured and a structured term)
# Per case: REML logLik, fixef, pbkrtest's adjusted covariance (vcovAdj), lmerTest's KR
# coefficient table and type III anova.  Run from the repo root:  Rscript tests/oracle/kr_structures.R
suppressMessages({library(lme4); library(lmerTest); library(pbkrtest); library(jsonlite)})
ss <- read.csv(gzfile("src/mmfast/datasets/data/sleepstudy.csv.gz"))
ss$Subject <- factor(ss$Subject, levels = sort(unique(ss$Subject)))
oats <- read.csv(gzfile("src/mmfast/datasets/data/Oats.csv.gz"))
oats$Block <- factor(oats$Block)
oats$Variety <- factor(oats$Variety)
oats$fnitro <- factor(oats$nitro)
drop_rows <- c(3, 10, 22, 41, 57, 66)  # 1-based: an unbalanced split plot (non-integer df)
oats_u <- oats[-drop_rows, ]

## singular: a random slope with no spread (structures.R's singular_diag, its saved data)
con <- gzfile("tests/reference/structures.json.gz")
sing_d <- as.data.frame(fromJSON(paste(readLines(con, warn = FALSE), collapse = ""))$singular_diag$data)
close(con)
sing_d$g <- factor(sing_d$g)

cases <- list(
  list(id = "sleep_diag", d = ss, f = Reaction ~ Days + (Days || Subject),
       py = "Reaction ~ Days + diag(Days | Subject)"),
  list(id = "sleep_diag_ml", d = ss, f = Reaction ~ Days + (Days || Subject), reml = FALSE,
       py = "Reaction ~ Days + diag(Days | Subject)"),
  list(id = "sleep_us", d = ss, f = Reaction ~ Days + (Days | Subject),
       py = "Reaction ~ Days + us(Days | Subject)"),
  list(id = "oats_homcs", d = oats, f = yield ~ Variety + fnitro + (1 | Block) + (1 | Block:Variety),
       py = "yield ~ Variety + factor(nitro) + homcs(0 + Variety | Block)"),
  list(id = "oats_homcs_unbalanced", d = oats_u, f = yield ~ Variety * nitro + (1 | Block) + (1 | Block:Variety),
       py = "yield ~ Variety * nitro + homcs(0 + Variety | Block)", drop = drop_rows - 1),
  list(id = "oats_two_terms_unbalanced", d = oats_u, f = yield ~ Variety * nitro + (1 | Block) + (1 | Block:Variety),
       py = "yield ~ Variety * nitro + (1 | Block) + homdiag(0 + Variety | Block)", drop = drop_rows - 1),
  list(id = "singular_diag", d = sing_d, f = y ~ x + (1 + x || g),
       py = "y ~ x + diag(1 + x | g)", save = c("g", "x", "y"))
)

out <- list()
for (cs in cases) {
  reml <- if (is.null(cs$reml)) TRUE else cs$reml
  m <- lmerTest::lmer(cs$f, data = cs$d, REML = reml,
                      control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5)))
  mr <- if (reml) m else update(m, REML = TRUE)
  vc <- as.data.frame(VarCorr(mr))
  co <- coef(summary(mr, ddf = "Kenward-Roger"))  # KR: on the REML refit of an ML fit, as mmfast
  an <- anova(mr, type = 3, ddf = "Kenward-Roger")
  rec <- list(
    formula_r = deparse(cs$f), formula = cs$py, reml = reml,
    loglik_reml = as.numeric(logLik(mr)), fixef = as.list(fixef(mr)),
    vcomp = setNames(as.list(vc$vcov), paste(vc$grp, vc$var1, vc$var2, sep = ".")),
    singular = isSingular(mr),
    vcov_adj = unname(as.matrix(vcovAdj(mr))),
    coef = list(names = rownames(co), estimate = unname(co[, "Estimate"]), se = unname(co[, "Std. Error"]),
                df = unname(co[, "df"]), t = unname(co[, "t value"]), p = unname(co[, "Pr(>|t|)"])),
    anova = list(terms = rownames(an), numdf = unname(an$NumDF), dendf = unname(an$DenDF),
                 F = unname(an$`F value`), p = unname(an$`Pr(>F)`)))
  if (!is.null(cs$drop)) rec$drop_rows0 <- cs$drop
  if (!is.null(cs$save)) rec$data <- as.list(lapply(cs$d[cs$save], function(v) if (is.factor(v)) as.integer(as.character(v)) else v))
  out[[cs$id]] <- rec
  cat(cs$id, rec$loglik_reml, "df:", rec$coef$df, "\n")
}
out[["_meta"]] <- list(script = "tests/oracle/kr_structures.R",
                       pbkrtest = as.character(packageVersion("pbkrtest")),
                       lmerTest = as.character(packageVersion("lmerTest")),
                       lme4 = as.character(packageVersion("lme4")), R = R.version.string)
con <- gzfile("tests/reference/kr_structures.json.gz", "w")
writeLines(toJSON(out, digits = 15, auto_unbox = TRUE, na = "null", null = "null"), con)
close(con)
cat("written tests/reference/kr_structures.json.gz\n")

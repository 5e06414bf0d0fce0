# lme4 on formula features the shared reference cases do not cover; writes
# tests/reference/formula_features.json.gz.  Run from the repo root:
#   Rscript tests/oracle/formula_features.R
# Factors are built with sorted levels (numbers numerically), as mmfast does.
suppressMessages({library(lme4); library(jsonlite)})
load_data <- function(name) {
  d <- read.csv(gzfile(file.path("src/mmfast/datasets/data", paste0(name, ".csv.gz"))))
  d
}
as_fac <- function(x) factor(x, levels = sort(unique(x)))
cases <- list(
  list(id = "cake_interaction", data = "cake", reml = TRUE,
       prep = function(d) { d$recipe <- as_fac(d$recipe); d$temperature <- as_fac(d$temperature);
                            d$replicate <- as_fac(d$replicate); d },
       formula = "angle ~ recipe * temperature + (1 | recipe:replicate)"),
  list(id = "sleep_double_bar", data = "sleepstudy", reml = TRUE,
       prep = function(d) { d$Subject <- as_fac(d$Subject); d },
       formula = "Reaction ~ Days + (Days || Subject)"),
  list(id = "sleep_transforms", data = "sleepstudy", reml = FALSE,
       prep = function(d) { d$Subject <- as_fac(d$Subject); d },
       formula = "Reaction ~ I(Days^2) + log(Days + 1) + (1 | Subject)"),
  list(id = "orthodont_no_intercept", data = "Orthodont", reml = TRUE,
       prep = function(d) { d$Sex <- as_fac(d$Sex); d$Subject <- as_fac(d$Subject); d },
       formula = "distance ~ 0 + Sex + age + (0 + age | Subject)"),
  list(id = "machines_interaction_group", data = "Machines", reml = TRUE,
       prep = function(d) { d$Machine <- as_fac(d$Machine); d$Worker <- as_fac(d$Worker); d },
       formula = "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)"),
  list(id = "oats_nested", data = "Oats", reml = TRUE,
       prep = function(d) { d$Block <- as_fac(d$Block); d$Variety <- as_fac(d$Variety); d },
       formula = "yield ~ nitro + Variety + (1 | Block/Variety)"),
  list(id = "grouse_crossed_log", data = "grouseticks", reml = FALSE,
       prep = function(d) { d$YEAR <- as_fac(d$YEAR); d$BROOD <- as_fac(d$BROOD);
                            d$LOCATION <- as_fac(d$LOCATION); d },
       formula = "log(TICKS + 1) ~ YEAR + cHEIGHT + (1 | LOCATION) + (1 | BROOD)"),
  list(id = "machines_factor_slope", data = "Machines", reml = FALSE,
       prep = function(d) { d$Machine <- as_fac(d$Machine); d$Worker <- as_fac(d$Worker); d },
       formula = "score ~ Machine + (0 + Machine | Worker)")
)
ctrl <- lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12, maxfun = 1e5))
out <- list()
for (cs in cases) {
  d <- cs$prep(load_data(cs$data))
  m <- lmer(as.formula(cs$formula), d, REML = cs$reml, control = ctrl)
  vc <- as.data.frame(VarCorr(m))
  out[[cs$id]] <- list(
    data = cs$data, formula = cs$formula, REML = cs$reml,
    factors = names(Filter(is.factor, d)),
    fixef_names = names(fixef(m)), fixef = unname(fixef(m)),
    se = unname(sqrt(diag(as.matrix(vcov(m))))),
    theta = unname(getME(m, "theta")), theta_names = names(getME(m, "theta")),
    sigma = sigma(m), logLik = as.numeric(logLik(m)),
    objective = as.numeric(if (cs$reml) REMLcrit(m) else deviance(m)),
    ngrps = as.list(ngrps(m)),
    varcorr = list(grp = vc$grp, var1 = vc$var1, var2 = vc$var2, vcov = vc$vcov, sdcor = vc$sdcor),
    singular = isSingular(m))
}
out[["_meta"]] <- list(script = "tests/oracle/formula_features.R",
                       control = "bobyqa, rhoend 1e-12 (tight, to compare with the optimum)",
                       lme4 = as.character(packageVersion("lme4")), R = R.version.string)
con <- gzfile("tests/reference/formula_features.json.gz", "w")
writeLines(toJSON(out, digits = 15, auto_unbox = TRUE, na = "null"), con)
close(con)
cat("written tests/reference/formula_features.json.gz\n")

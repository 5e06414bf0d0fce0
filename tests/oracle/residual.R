# nlme 3.1-162's residual (R-side) structures: corAR1, corCAR1, corCompSymm, corSymm, corExp and
# varIdent, varPower, varExp, varFixed in lme(); writes tests/reference/residual.json.gz, the
# oracle of tests/test_residual.py, and the simulated data tests/reference/residual_sim.csv.gz.
# Run from the repo root:  Rscript tests/oracle/residual.R
# Every case is fitted twice: nlme's defaults and tight control; the tests take the better logLik.
# apvar_se: sqrt(diag(fit$apVar)), nlme's SEs of the variance parameters on its unconstrained
# scale (fdHess differences; _tight: the same at the tight fit), behind intervals().
suppressMessages({library(nlme); library(jsonlite)})
options(width = 80)
load_data <- function(name) read.csv(gzfile(file.path("src/mmfast/datasets/data", paste0(name, ".csv.gz"))))
as_fac <- function(x) factor(x, levels = sort(unique(x)))
tight <- lmeControl(maxIter = 500, msMaxIter = 500, msMaxEval = 5000, niterEM = 0,
                    tolerance = 1e-12, msTol = 1e-14, returnObject = TRUE)

# simulated trial data: 12 clusters x 5 subjects x 4 visits at irregular times, CAR1 errors
# whose SD grows with x
set.seed(16)
sim <- expand.grid(visit = 1:4, subject = 1:60)
sim$cluster <- (sim$subject - 1) %/% 5 + 1
sim$time <- ave(runif(nrow(sim), 0, 8), sim$subject, FUN = sort)
sim$x <- round(runif(nrow(sim), 0.5, 3), 3)
sim$time <- round(sim$time, 3)
e <- numeric(nrow(sim))
for (s in unique(sim$subject)) {
  i <- which(sim$subject == s); t <- sim$time[i]
  C <- 0.6^abs(outer(t, t, "-"))
  e[i] <- t(chol(C)) %*% rnorm(length(i))
}
sim$y <- round(2 + 0.4 * sim$time + rnorm(12)[sim$cluster] + 0.8 * rnorm(60)[sim$subject] +
               e * sim$x^0.5, 4)
write.csv(sim, gzfile("tests/reference/residual_sim.csv.gz"), row.names = FALSE)
sim <- read.csv(gzfile("tests/reference/residual_sim.csv.gz"))
sim$subject <- as_fac(sim$subject); sim$cluster <- as_fac(sim$cluster)
sim$arm <- ifelse(sim$cluster %in% c("2", "4", "6", "8", "10", "12"), "treated", "control")  # a stratum (cluster-level)

Orthodont <- load_data("Orthodont"); Orthodont$Subject <- as_fac(Orthodont$Subject)
ex1 <- load_data("ex1"); ex1$treatment_idx <- as_fac(ex1$treatment_idx); ex1$midx <- as_fac(ex1$midx)

iv_frame <- function(m) {
  if (is.null(m)) return(NULL)
  list(names = rownames(m), lower = unname(m[, "lower"]), est = unname(m[, "est."]), upper = unname(m[, "upper"]))
}
record <- function(fit, tightfit) {
  s <- summary(fit)
  iv <- tryCatch(intervals(fit, which = "all"), error = function(e) NULL)
  ivo <- NULL
  if (!is.null(iv)) {
    ivo <- list(fixed = iv_frame(iv$fixed),
                reStruct = lapply(iv$reStruct, iv_frame),
                corStruct = iv_frame(iv$corStruct), varStruct = iv_frame(iv$varStruct),
                sigma = unname(as.numeric(iv$sigma)))
  }
  cs <- fit$modelStruct$corStruct; vs <- fit$modelStruct$varStruct
  list(logLik = as.numeric(logLik(fit)), logLik_tight = if (is.null(tightfit)) NULL else as.numeric(logLik(tightfit)),
       df = attr(logLik(fit), "df"), AIC = AIC(fit), BIC = BIC(fit),
       fixef = as.list(fixef(fit)), se = unname(s$tTable[, "Std.Error"]), tdf = unname(s$tTable[, "DF"]),
       tvalue = unname(s$tTable[, "t-value"]), sigma = fit$sigma,
       varcorr = unname(as.numeric(VarCorr(fit)[, "StdDev"])),
       cor = if (is.null(cs)) NULL else unname(coef(cs, unconstrained = FALSE)),
       cor_tight = if (is.null(cs) || is.null(tightfit)) NULL else unname(coef(tightfit$modelStruct$corStruct, unconstrained = FALSE)),
       var = if (is.null(vs)) NULL else unname(coef(vs, unconstrained = FALSE)),
       var_tight = if (is.null(vs) || is.null(tightfit)) NULL else unname(coef(tightfit$modelStruct$varStruct, unconstrained = FALSE)),
       intervals = ivo,
       apvar_se = if (is.matrix(fit$apVar)) unname(sqrt(diag(fit$apVar))) else NULL,
       apvar_se_tight = if (!is.null(tightfit) && is.matrix(tightfit$apVar)) unname(sqrt(diag(tightfit$apVar))) else NULL,
       print = capture.output(print(fit)), summary = capture.output(print(s)))
}
out <- list()
cases <- list(
  ortho_ar1 = list(data = "Orthodont", fixed = distance ~ age, random = ~1 | Subject, correlation = quote(corAR1())),
  ortho_cs = list(data = "Orthodont", fixed = distance ~ age, random = ~1 | Subject, correlation = quote(corCompSymm())),
  ex1_varident = list(data = "ex1", fixed = res ~ treatment_idx, random = ~1 | midx,
                      weights = quote(varIdent(form = ~1 | treatment_idx))),
  sim_car1 = list(data = "sim", fixed = y ~ time, random = ~1 | subject,
                  correlation = quote(corCAR1(form = ~time | subject))),
  sim_exp = list(data = "sim", fixed = y ~ time, random = ~1 | subject,
                 correlation = quote(corExp(form = ~time | subject))),
  sim_symm = list(data = "sim", fixed = y ~ time, random = ~1 | cluster,
                  correlation = quote(corSymm(form = ~visit | cluster/subject))),
  sim_power = list(data = "sim", fixed = y ~ time, random = ~1 | subject, weights = quote(varPower(form = ~x))),
  sim_varexp = list(data = "sim", fixed = y ~ time, random = ~1 | subject, weights = quote(varExp(form = ~x))),
  sim_fixed = list(data = "sim", fixed = y ~ time, random = ~1 | subject, weights = quote(varFixed(~x))),
  sim_car1_power = list(data = "sim", fixed = y ~ time, random = ~1 | cluster/subject,
                        correlation = quote(corCAR1(form = ~time | cluster/subject)), weights = quote(varPower(form = ~x))),
  # nlme's default covariate fitted(.): the outer iteration between the fit and the weights
  ortho_power_fitted = list(data = "Orthodont", fixed = distance ~ age, random = ~1 | Subject,
                            weights = quote(varPower())),
  ortho_power_fitted_sex = list(data = "Orthodont", fixed = distance ~ age, random = ~1 | Subject,
                                weights = quote(varPower(form = ~fitted(.) | Sex))),
  ex1_varexp_fitted = list(data = "ex1", fixed = res ~ treatment_idx, random = ~1 | midx,
                           weights = quote(varExp())),
  ex1_constpower_fitted = list(data = "ex1", fixed = res ~ treatment_idx, random = ~1 | midx,
                               weights = quote(varConstPower())),
  sim_constpower_x = list(data = "sim", fixed = y ~ time, random = ~1 | subject,
                          weights = quote(varConstPower(form = ~x))),
  sim_power_sex_x = list(data = "sim", fixed = y ~ time, random = ~1 | subject,
                         correlation = quote(corCAR1(form = ~time | subject)),
                         weights = quote(varPower(form = ~x | arm)))
)
for (id in names(cases)) for (method in c("REML", "ML")) {
  cs <- cases[[id]]
  args <- list(fixed = cs$fixed, data = as.name(cs$data), random = cs$random, method = method)
  if (!is.null(cs$correlation)) args$correlation <- eval(cs$correlation)
  if (!is.null(cs$weights)) args$weights <- eval(cs$weights)
  fit <- do.call(lme, args)
  tf <- tryCatch(do.call(lme, c(args, list(control = quote(tight)))), error = function(e) NULL)
  key <- paste0(id, "_", tolower(method))
  out[[key]] <- c(list(data = cs$data, fixed = deparse(cs$fixed), random = deparse(cs$random), method = method,
                       correlation = if (is.null(cs$correlation)) NULL else deparse(cs$correlation),
                       weights = if (is.null(cs$weights)) NULL else deparse(cs$weights)),
                  record(fit, tf))
  message(key, " ", out[[key]]$logLik, " ", if (is.null(tf)) "NA" else out[[key]]$logLik_tight)
}
# anova() between models that differ only in the residual structure
m0 <- lme(distance ~ age, Orthodont, random = ~1 | Subject)
m1 <- lme(distance ~ age, Orthodont, random = ~1 | Subject, correlation = corAR1())
a <- anova(m0, m1)
out$ortho_anova <- list(df = a$df, logLik = a$logLik, L.Ratio = a$L.Ratio[2], p = a$`p-value`[2],
                        text = capture.output(print(a)))
# Satterthwaite with the residual parameters estimated, oracle by equivalence: a compound-symmetry
# residual within Subject (Rho >= 0) beside (0 + Days | Subject) is lme4's (1 | Subject) + (0 + Days | Subject)
suppressMessages(library(lmerTest))
sleepstudy <- load_data("sleepstudy"); sleepstudy$Subject <- as_fac(sleepstudy$Subject)
for (reml in c(TRUE, FALSE)) {
  m <- lmer(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), sleepstudy, REML = reml,
            control = lmerControl(optCtrl = list(ftol_abs = 1e-12, xtol_abs = 1e-10)))
  cf <- summary(m)$coefficients
  a <- anova(m)
  out[[paste0("satt_cs_", if (reml) "reml" else "ml")]] <- list(
    logLik = as.numeric(logLik(m)), fixef = unname(fixef(m)), se = unname(cf[, "Std. Error"]),
    df = unname(cf[, "df"]), anova_df = unname(a$DenDF), anova_F = unname(a$`F value`),
    vc = as.data.frame(VarCorr(m))$vcov)
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, null = "null"), gzfile("tests/reference/residual.json.gz"))
